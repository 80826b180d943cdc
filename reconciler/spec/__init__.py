"""Spec trees: YAML source with positions, the safe parser, the loader, the spec cache, document facts, cross-document checks, JSON Schemas."""
