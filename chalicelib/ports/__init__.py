"""Ports: the interfaces the use cases need, one module each; adapters live in
chalicelib.adapters."""
