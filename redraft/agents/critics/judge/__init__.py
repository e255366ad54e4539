"""The judge of the tests critic: tests run here, the solution in its own sandboxed process."""
