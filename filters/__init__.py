"""Filter resources (one plain-text list per file), shipped as package data for recipes to name."""
