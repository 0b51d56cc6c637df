"""Variables, Apply nodes, the graph, tracing, `function` and `@compile`."""
