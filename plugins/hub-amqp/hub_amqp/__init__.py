"""The hub-amqp plugin: RabbitMQ (AMQP 0-9-1) publish action and queue trigger."""
