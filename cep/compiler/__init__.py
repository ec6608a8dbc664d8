"""Rule compiler: expressions to Python code objects, patterns to NFAs."""
