"""Machinery shared by the algorithms: base classes, policies, buffers, the saved-model format."""
