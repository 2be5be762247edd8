"""Cost model: hardware specs (datasheet and measured) that turn FLOPs and bytes into time."""
