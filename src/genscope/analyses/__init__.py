"""Analyses: pure functions over op-event tables, each returning a DataFrame; figures are
separate functions of those DataFrames (``plot_*``)."""
