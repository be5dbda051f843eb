/**
 * What the stages of a training job share: the dependencies they are given and the
 * context each stage extends with what it found. A stage is `(ctx, deps) => ctx'`,
 * so the type of the context says which stages have run.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { Shard } from '../../shared/data/shards.js';
import type { Embedder, LoadEmbedderOptions } from '../../shared/ml/embedder.js';
import type { EngineName } from '../../shared/ml/onnx/runtime.js';
import type { ResolvedBase } from '../../shared/ml/base-models.js';
import type { BaselineComparison, BaselineResult } from '../../shared/ml/baseline.js';
import type { BaselineRun } from '../../shared/ml/baseline-thread.js';
import type { SharingComparison, TaskMetrics } from '../../shared/ml/mtl-evaluate.js';
import type { Split } from '../../shared/ml/split.js';
import type { trainModel } from '../../shared/ml/train.js';
import type { ContinualReport, EmbeddedSplits, FineTuneReport, JobBase } from '../../shared/ml/transfer-job.js';
import type { PromotionDecision } from '../../shared/models/promotion.js';
import type { ObjectStore } from '../../shared/ports/object-store.js';
import type { DatasetReport, SplitName } from '../../shared/schemas/report.js';
import type { InputSpec, TaskHead } from '../../shared/schemas/model.js';
import type { TrainSpec } from '../../shared/schemas/spec.js';
import type { Cut } from '../../shared/schemas/base-model.js';
import type { SearchReport } from '../../shared/schemas/search.js';
import type { TrainResult } from '../../shared/ml/train.js';
import type { JobProgress } from './progress.js';
import type { TrainingPlan } from './plans.js';

export interface TrainJobInput {
  jobId: string;
  /** `prepared/<dataset>/<hash>`. */
  preparedPrefix: string;
}

/** The one training loop (shared/ml/train.ts), or a stand-in with its signature. */
export type Trainer = typeof trainModel;

/** The frozen forward pass: images in, embeddings out, for a base cut where `opts` says. */
export type EmbedderProvider = (base: ResolvedBase, opts: LoadEmbedderOptions) => Promise<Embedder>;

export interface TrainJobDeps {
  store: ObjectStore;
  /** Progress lines for a human (stderr in the job). @default no logging */
  log?: (line: string) => void;
  /** @default () => new Date() */
  now?: () => Date;
  /** Least time between two progress writes to the status object. @default 1000 ms */
  statusIntervalMs?: number;
  /** Trains every model of the job (the served one and those it is compared with). @default trainModel */
  trainer?: Trainer;
  /** Loads the frozen embedder of a base. @default the TensorFlow.js embedder (loadEmbedder) */
  embedder?: EmbedderProvider;
}

/** The dependencies as stages see them: defaults applied, plus the job's status writer. */
export interface StageDeps {
  store: ObjectStore;
  log: (line: string) => void;
  now: () => Date;
  trainer: Trainer;
  embedder: EmbedderProvider;
  progress: JobProgress;
  /** Registers a release (models, graphs) to run when the job ends, however it ends. */
  defer: (release: () => void) => void;
  /** Milliseconds of each finished stage (`<stage>Ms`) and since the job started (`totalMs`). */
  timings: () => Record<string, number>;
}

/** After `load`: the dataset, the spec, the plan and the base. */
export interface LoadedJob {
  input: TrainJobInput;
  report: DatasetReport;
  spec: TrainSpec;
  modelName: string;
  plan: TrainingPlan;
  jobBase: JobBase;
  /** Tasks of the model to train, in output order. */
  heads: TaskHead[];
  shards: Record<SplitName, Shard>;
  inputSpec: InputSpec;
}

/** After `embed`: labelled records of every split as the heads read them. */
export interface EmbeddedJob extends LoadedJob {
  data: Record<SplitName, Split>;
  embeddingSize: number;
  /** Image jobs: the embedding cache's outcome, labelled indices and cut activations. */
  embedded?: EmbeddedSplits;
  /** Image jobs: the engine that runs the frozen part (recorded in the metadata). */
  engine?: EngineName;
  /** Cuts embedded for the representation search (the first is the job's own, `data`), when it runs. */
  candidates?: Array<{ name: string; cut: Cut; embedded: EmbeddedSplits }>;
  /** Why the representation search does not run for this job. */
  searchSkipped?: string;
  /** Image jobs: the from-scratch baseline, started here and training beside the next stages; `compare` collects it. */
  baselineRun?: BaselineRun;
}

/** After `search`: the representation chosen (already in `data`), its leaderboard, and how to fit the served model. */
export interface SearchedJob extends EmbeddedJob {
  search?: SearchReport;
  /** The linear family refitted on train + validation with these λ per task, instead of training heads. */
  linearRefit?: { l2: Record<string, number> };
  /** The spec's hidden-layer model won: trained on train + validation for this many epochs. */
  hiddenRefit?: { epochs: number };
}

/** After `train`: the model to serve and how training went. */
export interface TrainedJob extends SearchedJob {
  /** The model published (the fine-tuned one when the plan fine-tunes). */
  served: LayersModel;
  /** Inputs of the served model on the test and validation splits (cut activations once fine-tuned). */
  servedData: Pick<Record<SplitName, Split>, 'validation' | 'test'>;
  result: TrainResult;
  resumedFrom?: number;
  /** Whether epochs were chosen on the validation split (undefined: the plan does not choose). */
  selectOnValidation?: boolean;
  fineTune?: FineTuneReport;
  /** Embedding size of the served model's input. */
  servedSize: number;
}

/** After `evaluate`: thresholds tuned and test metrics per task. */
export interface EvaluatedJob extends TrainedJob {
  evaluation: Record<string, TaskMetrics | undefined>;
  /** Summary per task (accuracy, macroF1, …) as stored in metadata.metrics. */
  testMetrics: Record<string, Record<string, number>>;
}

/** After `compare`: what the model is measured against. */
export interface ComparedJob extends EvaluatedJob {
  sharingComparison?: Record<string, SharingComparison>;
  baseline?: { result: BaselineResult; comparison: BaselineComparison };
  continual?: ContinualReport;
}

/** After `gate`: whether the version replaces the serving one. */
export interface GatedJob extends ComparedJob {
  promotion: PromotionDecision;
}
