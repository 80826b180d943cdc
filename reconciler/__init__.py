"""pipeform's engine and command line. Kept import-light: see reconciler.cli."""
