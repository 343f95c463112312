"""Bundled build recipes (TOML); shipped as package data so `wukong build NAME` finds them."""
