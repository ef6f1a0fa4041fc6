"""What both processes import: the wire protocol, the config.yml schema, the errors, attribute declarations, CurveZMQ keys."""
