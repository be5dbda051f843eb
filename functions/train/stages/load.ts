/** Stage `load`: the dataset report and shards, the spec's tasks, the training plan and its base. */
import { readSplit, type Shard } from '../../../shared/data/shards.js';
import { SPLITS } from '../../../shared/ml/split.js';
import { taskKind } from '../../../shared/ml/task-kinds.js';
import type { InputSpec, TaskHead } from '../../../shared/schemas/model.js';
import type { DatasetReport, SplitName } from '../../../shared/schemas/report.js';
import { tasksOf, type TrainSpec } from '../../../shared/schemas/spec.js';
import type { LoadedJob, StageDeps, TrainJobInput } from '../context.js';
import { TrainingInputError } from '../errors.js';
import { choosePlan } from '../plans.js';

export async function load(input: TrainJobInput, report: DatasetReport, deps: StageDeps): Promise<LoadedJob> {
  const spec = report.spec;
  const modelName = spec.model ?? report.dataset;
  deps.log(`job ${input.jobId}: model ${modelName} from ${report.dataset}@${report.hash.slice(0, 12)}, base ${spec.base}`);
  if (spec.mode !== 'train') throw new TrainingInputError(`mode "${spec.mode}" does not use a training job`);
  const isVector = spec.input.type === 'vector';
  if (isVector && spec.base !== 'none') throw new TrainingInputError(`vector inputs need base "none", not "${spec.base}"`);
  const plan = choosePlan(spec);
  const jobBase = await plan.prepareBase(deps.store, spec, headsFor(spec, report));
  deps.defer(() => jobBase.dispose());
  const shards = {} as Record<SplitName, Shard>;
  for (const split of SPLITS) shards[split] = await readSplit(deps.store, report, split);
  const dtype = isVector ? 'float32' : 'uint8';
  for (const split of SPLITS) {
    const s = shards[split];
    if (s.records.length > 0 && s.dtype !== dtype)
      throw new TrainingInputError(`the ${split} shards hold ${s.dtype} data, expected ${isVector ? 'float32 vectors' : 'uint8 images'}`);
  }
  return { input, report, spec, modelName, plan, jobBase, heads: jobBase.heads, shards, inputSpec: inputSpecOf(report, isVector) };
}

/** Task heads in output order; class labels sorted, from the dataset report. */
function headsFor(spec: TrainSpec, report: DatasetReport): TaskHead[] {
  return tasksOf(spec).map((task) => {
    const found = report.tasks[task.name];
    if (!found) throw new TrainingInputError(`task "${task.name}" has no labels in the dataset`);
    const labels = Object.keys(found.classes ?? {}).sort();
    const head: TaskHead =
      task.type === 'regression'
        ? { name: task.name, type: task.type, auxiliary: task.auxiliary, size: task.size ?? found.size ?? 1 }
        : { name: task.name, type: task.type, auxiliary: task.auxiliary, labels };
    if (task.type === 'classification' && labels.length < 2) {
      throw new TrainingInputError(
        `task "${task.name}" needs at least 2 classes to learn from, the dataset has ${labels.length}${labels.length ? ` (${labels.join(', ')})` : ''}`,
      );
    }
    taskKind(task.type).outputUnits(head);
    return head;
  });
}

function inputSpecOf(report: DatasetReport, isVector: boolean): InputSpec {
  if (isVector) {
    if (report.inputShape.length !== 1) throw new TrainingInputError(`vector records must have one dimension, the report says ${report.inputShape.join('×')}`);
    return { type: 'vector', size: report.inputShape[0] };
  }
  if (report.inputShape.length !== 3) throw new TrainingInputError(`image records must be h×w×c, the report says ${report.inputShape.join('×')}`);
  const [h, w, c] = report.inputShape;
  return { type: 'image', shape: [h, w, c] };
}
