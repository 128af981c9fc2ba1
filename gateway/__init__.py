"""Green Button Connect My Data gateway."""
