"""One module per integration a receiver can have (Alertmanager's ``*_configs``)."""
