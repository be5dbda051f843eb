/**
 * Events: S3 "object created" notifications delivered through a queue. In the
 * cloud S3 → SQS → Lambda is configured by infrastructure; locally an in-process
 * queue carries messages with the same body shape (an S3 event JSON) to the same
 * handler, wrapped in an SQS event.
 */
export interface EventQueue {
  /** Enqueues one message whose body is an S3 event notification JSON. */
  send(body: string): Promise<void>;
}
