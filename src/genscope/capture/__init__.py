"""Two ways of seeing one run (analytic dispatch capture, measured profiling); same rows."""
