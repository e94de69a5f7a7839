"""The hub-mqtt plugin: MQTT publish action and topic subscription trigger."""
