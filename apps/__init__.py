"""Applications composed from the services: the embedded stack (``make up``) and the demo (``make demo``)."""
