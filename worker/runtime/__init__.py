"""The run loop: resources, pollers, tasks, cool-down and shutdown."""
