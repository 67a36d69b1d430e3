"""Built-in device profiles, shipped as TOML data in the wheel (see edgekit.devices.profiles)."""
