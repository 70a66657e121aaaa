using System.Runtime.InteropServices;
using ClipSharp.Export.OnnxIr;
using Google.Protobuf;

namespace ClipSharp.Export;

/// <summary>An attribute of an ONNX node: a name and one value (int64, float, int64 list or string).</summary>
internal readonly record struct OnnxAttribute(string Name, object Value)
{
    public static OnnxAttribute Int(string name, long value) => new(name, value);
    public static OnnxAttribute Ints(string name, params long[] values) => new(name, values);
    public static OnnxAttribute Float(string name, float value) => new(name, value);

    public AttributeProto ToProto()
    {
        var a = new AttributeProto { Name = Name };
        switch (Value)
        {
            case long i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case long[] ints: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ints); break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            default: throw new ArgumentException($"attribute {Name}: unsupported value type {Value?.GetType().Name}");
        }
        return a;
    }
}

/// <summary>
/// Builds one ONNX graph: typed inputs and outputs, weights as initializers (raw little-endian data), and nodes whose
/// outputs get fresh names. Every helper returns the name of the value it produces, so a tower reads like its forward.
/// </summary>
internal sealed class OnnxGraph(string name)
{
    /// <summary>IR version 8 is the one of opset 17 (ONNX 1.12).</summary>
    public const long IrVersion = 8;

    /// <summary>The default-domain opset the graphs use (LayerNormalization arrived in 17; Debian 12's onnx 1.12 checks up to 17).</summary>
    public const long Opset = 17;

    readonly GraphProto graph = new() { Name = name };
    readonly HashSet<string> names = new(StringComparer.Ordinal);
    int counter;

    /// <summary>Bytes of initializer data added so far.</summary>
    public long InitializerBytes { get; private set; }

    string Fresh(string hint)
    {
        string n;
        do n = $"{hint}_{counter++}"; while (!names.Add(n));
        return n;
    }

    string Claim(string n)
    {
        if (!names.Add(n)) throw new InvalidOperationException($"ONNX graph {graph.Name}: the name {n} is used twice");
        return n;
    }

    static ValueInfoProto Value(string n, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string p ? new TensorShapeProto.Types.Dimension { DimParam = p } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        return new ValueInfoProto { Name = n, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    /// <summary>Declares a graph input; a string dimension is symbolic (dynamic).</summary>
    public string Input(string n, TensorProto.Types.DataType type, params object[] dims)
    {
        graph.Input.Add(Value(Claim(n), type, dims));
        return n;
    }

    /// <summary>Renames <paramref name="value"/> to the graph output <paramref name="n"/> (an Identity node) and declares it.</summary>
    public void Output(string value, string n, TensorProto.Types.DataType type, params object[] dims)
    {
        Claim(n);
        graph.Node.Add(new NodeProto { OpType = "Identity", Name = "output_" + n, Input = { value }, Output = { n } });
        graph.Output.Add(Value(n, type, dims));
    }

    /// <summary>A float32 initializer of the given shape (row-major data).</summary>
    public string Weight(string n, float[] data, params long[] dims)
    {
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (count != data.Length) throw new ArgumentException($"initializer {n}: {data.Length} values for shape [{string.Join(",", dims)}]");
        return AddInitializer(Claim(n), TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(data.AsSpan()), dims);
    }

    /// <summary>An int64 initializer; <paramref name="scalar"/> makes a 0-d tensor of the single value.</summary>
    public string Int64s(string hint, long[] values, bool scalar = false) =>
        AddInitializer(Fresh(hint), TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values.AsSpan()), scalar ? [] : [values.Length]);

    /// <summary>A 0-d float32 constant.</summary>
    public string Scalar(string hint, float value) =>
        AddInitializer(Fresh(hint), TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(new[] { value }.AsSpan()), []);

    string AddInitializer(string n, TensorProto.Types.DataType type, ReadOnlySpan<byte> bytes, long[] dims)
    {
        var t = new TensorProto { Name = n, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        graph.Initializer.Add(t);
        InitializerBytes += bytes.Length;
        return n;
    }

    /// <summary>Adds a node with one output and returns that output's name.</summary>
    public string Node(string op, string[] inputs, params OnnxAttribute[] attributes) => Node(op, inputs, 1, attributes)[0];

    /// <summary>Adds a node with <paramref name="outputs"/> outputs and returns their names.</summary>
    public string[] Node(string op, string[] inputs, int outputs, params OnnxAttribute[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Fresh(op) };
        node.Input.AddRange(inputs);
        var outs = Enumerable.Range(0, outputs).Select(_ => Fresh(op.ToLowerInvariant())).ToArray();
        node.Output.AddRange(outs);
        foreach (var a in attributes) node.Attribute.Add(a.ToProto());
        graph.Node.Add(node);
        return outs;
    }

    /// <summary>
    /// The model around the graph. Initializers of at least <paramref name="externalMinBytes"/> bytes are moved to
    /// <paramref name="externalDataFile"/> (ONNX external data, beside the model) when that is given: protobuf cannot
    /// hold a message over 2 GB, so larger models must keep their weights outside it.
    /// </summary>
    public ModelProto ToModel(string docString, IReadOnlyDictionary<string, string> metadata, string? externalDataDirectory = null, string? externalDataFile = null, long externalMinBytes = 1024)
    {
        if (externalDataFile is not null)
        {
            using var data = new FileStream(Path.Combine(externalDataDirectory!, externalDataFile), FileMode.Create, FileAccess.Write);
            foreach (var t in graph.Initializer)
            {
                if (t.RawData.Length < externalMinBytes) continue;
                // Offsets aligned to 4 KiB, as ONNX's own writer does, so a reader can map the tensors.
                long offset = (data.Position + 4095) / 4096 * 4096;
                data.SetLength(Math.Max(data.Length, offset));
                data.Position = offset;
                t.RawData.WriteTo(data);
                t.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = externalDataFile });
                t.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                t.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.RawData.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                t.DataLocation = TensorProto.Types.DataLocation.External;
                t.RawData = ByteString.Empty;
            }
        }
        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "ClipSharp",
            ProducerVersion = typeof(OnnxGraph).Assembly.GetName().Version?.ToString() ?? "0",
            DocString = docString,
            Graph = graph,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = Opset } },
        };
        foreach (var (k, v) in metadata) model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }
}
