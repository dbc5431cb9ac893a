"""autotl's own plugins, written and registered exactly like third-party ones."""
