"""Shared test helpers: model files, servers and clients used across test areas."""
