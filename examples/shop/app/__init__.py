"""The shop demo services; run one with ``python -m app.SERVICE`` from examples/shop/."""
