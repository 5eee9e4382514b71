"""The compatibility suite, run over every pool class (the ``pool_cls`` fixture)."""
