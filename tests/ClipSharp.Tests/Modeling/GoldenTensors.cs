using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>Interim safetensors reader for the model tests (F32/I64/U8 only).</summary>
internal static class GoldenTensors
{
    public static Dictionary<string, Tensor> Load(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        var result = new Dictionary<string, Tensor>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "__metadata__") continue;
            var dtype = p.Value.GetProperty("dtype").GetString();
            var shape = p.Value.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var off = p.Value.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var span = bytes.AsSpan((int)(8 + n + off[0]), (int)(off[1] - off[0]));
            Tensor t = dtype switch
            {
                "F32" => torch.tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(span).ToArray(), shape),
                "I64" => torch.tensor(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(span).ToArray(), shape),
                "U8" => torch.tensor(span.ToArray(), shape),
                _ => throw new NotSupportedException(dtype),
            };
            result[p.Name] = t.DetachFromDisposeScope();
        }
        return result;
    }
}
