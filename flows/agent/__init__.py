"""The agent's view in the admin: conversations waiting for a human, one thread per contact, a
reply box, assign / hand over / hand back, and the parked inbound messages with replay."""
