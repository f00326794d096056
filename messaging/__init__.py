"""guildsite messaging: the one way anything in guildsite talks to anything else.

Modules, one job each:

* `ids`      - 63-bit time-ordered message ids with priority (`new_id`, `derive_id`, `parse_id`)
* `message`  - the Message model (seed 002) and routing-slip types; JSON ids as strings
* `topics`   - topic names, defined once, and guild namespacing
* `config`   - MessagingConfig and backend resolution (the original `rustic_ai…` paths as aliases)
* `bus`      - MessagingInterface: publish, subscribe, history; the delivery rules
* `clients`  - MessageTrackingClient (default for agents), SimpleClient and wrappers
* `backends` - `memory` (embedded default) and `redis` (shared, persistent)
* `errors`   - typed errors, all `MessagingError`

Nothing here imports from `guilds` or `catalog`.
"""
