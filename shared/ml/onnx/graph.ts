/**
 * A small builder for ONNX graphs, serialised with `onnx-proto` (the protobufjs
 * classes generated from onnx.proto). The exporter adds nodes and float32
 * initializers here; weights stay mutable Float32Arrays until `encode` so that
 * batch norm can be folded into the convolution before it (export.ts).
 *
 * Opset 13 throughout: Softmax takes one axis (the last, as in Keras), Clip and
 * Pad take their bounds and pads as inputs, Sum/Max/Mean are variadic.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export const OPSET = 13;
/** IR version 7 is the one that goes with opset 13 (ONNX versioning table). */
const IR_VERSION = 7;

type AttrValue = number | number[] | string | { float: number };

export interface Initializer {
  name: string;
  dims: number[];
  /** float32 weights, or int64 values (shapes, pads) given as numbers. */
  data: Float32Array | { int64: number[] };
}

export interface ValueInfo {
  name: string;
  /** Dimensions; a string is a symbolic dimension such as the batch `N`. */
  shape: Array<number | string>;
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INT, i: v };
}

function tensor(init: Initializer): onnxProto.onnx.ITensorProto {
  const DT = onnx.TensorProto.DataType;
  if (init.data instanceof Float32Array) {
    const raw = new Uint8Array(init.data.buffer.slice(init.data.byteOffset, init.data.byteOffset + init.data.byteLength));
    return { name: init.name, dims: init.dims, dataType: DT.FLOAT, rawData: raw };
  }
  return { name: init.name, dims: init.dims, dataType: DT.INT64, int64Data: init.data.int64 };
}

function valueInfo(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: v.shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly initializers = new Map<string, Initializer>();
  private readonly used = new Set<string>();
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];

  /** A value name not used yet, derived from `base` (layer names are unique, suffixes keep helper values apart). */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  addInitializer(base: string, dims: number[], data: Initializer['data']): Initializer {
    const init = { name: this.fresh(base), dims, data };
    this.initializers.set(init.name, init);
    return init;
  }

  /** Adds a node; returns the names of its outputs (fresh names derived from `name`). */
  node(opType: string, inputs: string[], name: string, attrs: Record<string, AttrValue> = {}, outputCount = 1): string[] {
    const outputs = Array.from({ length: outputCount }, (_, i) => this.fresh(outputCount === 1 ? name : `${name}_${i}`));
    this.nodes.push({
      opType,
      name: this.fresh(`${name}/${opType}`),
      input: inputs,
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** A node writing to `output`, a name reserved with `fresh` (graph outputs keep their exact names). */
  named(opType: string, inputs: string[], output: string): void {
    this.nodes.push({ opType, name: this.fresh(`${output}/${opType}`), input: inputs, output: [output], attribute: [] });
  }

  /** One-output node. */
  op(opType: string, inputs: string[], name: string, attrs: Record<string, AttrValue> = {}): string {
    return this.node(opType, inputs, name, attrs)[0];
  }

  encode(opts: { graphName: string; producer: string; metadata?: Record<string, string> }): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: opts.producer,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: opts.graphName,
        node: this.nodes,
        initializer: [...this.initializers.values()].map(tensor),
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
      },
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
