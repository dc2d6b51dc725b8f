"""The Discord adapter (discord.py 2): renders the core's studio on Discord.

app.py         DiscordAdapter and LokizBot (setup_hook: cogs, dynamic items, command sync)
cogs/          one feature each: capture (+ DMs and mentions), effects (/template /glitch
               /music), remix (the "Remix this clip" menu), social (/feed /top /post
               /delete), account, admin
components.py  core buttons and selects as restart-proof DynamicItems; the prompt form
presses.py     presses, selects and form submits → the core
render.py      a core Reply as interaction answers or channel messages
feed.py        a feed page as one message: the clips as attachments, 👍 🌀 numbered, ◀ ▶
notifier.py    the engine's status messages and results, as channel messages
downloads.py   attachments from the CDN, size first
"""
