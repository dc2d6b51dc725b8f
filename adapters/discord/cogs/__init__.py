"""One cog per feature; `LokizBot.setup_hook` adds them all."""
