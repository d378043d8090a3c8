"""The lab: gradient checker, gradient-flow measurements, initialisers, long-range
tasks, figures and the HTML report."""
