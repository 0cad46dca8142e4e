"""Alert rules, their state, and the notifications they cause (see ARCHITECTURE.md)."""
