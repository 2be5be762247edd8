"""Small, readable architectures for models that have no maintained implementation.

Each module cites the paper its dimensions come from; the component configs in
``configs/<workload>/`` pass these classes their keyword arguments.
"""
