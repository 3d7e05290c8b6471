"""The rollout core: state, observations, actions and the pure state machine."""
