"""Dev tooling, apart from the product: the local fleet of real API servers, the test
repositories, the demo and the OPA runner the tests start.

Production settings leave it out: it is an installed app (for its ``localfleet``,
``demo`` and ``testrepos`` commands) only when ``FLEET_DEV_TOOLS`` is true, and no
product module imports it (``tests/test_layers.py`` checks). It may import anything.
"""
