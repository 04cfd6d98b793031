"""Development-only pieces: an embedded Valkey server, the example worker, the example page.

None of them runs in production: each is switched on by a development setting
(``stirfried_embedded_redis``, ``--example-worker``, ``stirfried_example_page``).
"""
