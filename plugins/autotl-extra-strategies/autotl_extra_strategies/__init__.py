"""Extra autotl strategies, shipped as a separate plugin distribution."""
