"""Providers: plug-ins that read and change live things, one package per platform.

The provider protocol and registry (providers/base.py) arrive with the reconciliation
engine; until then this package only reserves the namespace.
"""
