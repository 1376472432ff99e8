"""The spec layer: YAML text to a checked, frozen `Spec`, every error placed at file:line:col."""
