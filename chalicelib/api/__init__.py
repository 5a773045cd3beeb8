"""HTTP layer: Chalice blueprints that parse, make one service call and return JSON."""
