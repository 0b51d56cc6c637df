"""Variables, Apply nodes, the graph, tracing, `function`, `@compile` and printing."""
