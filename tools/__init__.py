"""Tooling of the repository (not the library a reader opens): the book runner and the browser test."""
