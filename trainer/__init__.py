"""The bundled PyTorch trainer (``python -m trainer``); it lands with the trainer issue."""
