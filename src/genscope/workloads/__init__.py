"""The model suite: named pipelines of config-built components (see ``registry``)."""
