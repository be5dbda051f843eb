import { Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as events from 'aws-cdk-lib/aws-events';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface AlertsProps {
  /** Subscribed to the topic by email (the owner confirms it once). @default no subscriber */
  email?: string;
  /** Alarms made elsewhere that should notify too (the ingest DLQ alarm). */
  existingAlarms?: cloudwatch.Alarm[];
  /** Queues where a message means work that failed for good. */
  deadLetterQueues: { id: string; queue: sqs.IQueue; description: string }[];
  /** The rule that matches this tenant's FAILED Batch jobs. */
  jobFailedRule: events.IRule;
  /** Functions whose errors and throttles are alarmed. */
  functions: { id: string; fn: lambda.IFunction }[];
  api: apigw.RestApi;
  /** p99 latency (ms) of the API above which the latency alarm fires. @default 10000 */
  latencyP99Ms?: number;
}

/**
 * Someone is told: one SNS topic per tenant, and alarms with that action on every
 * way the platform fails quietly (a dead letter, a failed job, a function erroring
 * or throttled, the API answering 5xx or slowly).
 */
export class Alerts extends Construct {
  public readonly topic: sns.Topic;
  public readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'Transfer learning platform alarms', enforceSSL: true });
    if (props.email) this.topic.addSubscription(new subscriptions.EmailSubscription(props.email));
    const notify = new actions.SnsAction(this.topic);
    for (const alarm of props.existingAlarms ?? []) alarm.addAlarmAction(notify);

    const fiveMinutes = { period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM };
    const atLeastOne = (alarmId: string, metric: cloudwatch.IMetric, description: string) =>
      this.add(alarmId, { metric, threshold: 1, comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD, description });

    for (const { id: queueId, queue, description } of props.deadLetterQueues) {
      atLeastOne(
        `${queueId}Alarm`,
        queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
        description,
      );
    }
    atLeastOne(
      'JobFailedAlarm',
      new cloudwatch.Metric({
        namespace: 'AWS/Events',
        metricName: 'TriggeredRules',
        dimensionsMap: { RuleName: props.jobFailedRule.ruleName },
        ...fiveMinutes,
      }),
      'A training job failed (its status.json says why; tl status <model>)',
    );
    for (const { id: fnId, fn } of props.functions) {
      atLeastOne(`${fnId}ErrorsAlarm`, fn.metricErrors(fiveMinutes), `The ${fnId} function failed (see its log group)`);
      atLeastOne(`${fnId}ThrottlesAlarm`, fn.metricThrottles(fiveMinutes), `The ${fnId} function hit its reserved concurrency`);
    }
    atLeastOne('Api5xxAlarm', props.api.metricServerError(fiveMinutes), 'The API answered 5xx');
    this.add('ApiLatencyAlarm', {
      metric: props.api.metricLatency({ period: Duration.minutes(5), statistic: cloudwatch.Stats.p(99) }),
      threshold: props.latencyP99Ms ?? 10_000,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      // Two slow 5-minute windows out of three: one slow cold start is not an incident.
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description: 'p99 latency of the API is above the threshold',
    });
  }

  private add(
    id: string,
    options: {
      metric: cloudwatch.IMetric;
      threshold: number;
      comparisonOperator: cloudwatch.ComparisonOperator;
      description: string;
      evaluationPeriods?: number;
      datapointsToAlarm?: number;
    },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric: options.metric,
      threshold: options.threshold,
      comparisonOperator: options.comparisonOperator,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      datapointsToAlarm: options.datapointsToAlarm,
      alarmDescription: options.description,
      // No data means nothing happened: no requests, no failures.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.topic));
    this.alarms.push(alarm);
    return alarm;
  }
}
