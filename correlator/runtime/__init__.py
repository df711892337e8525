"""When things happen: the composition root, the queue consumers. Only entry points import it."""
