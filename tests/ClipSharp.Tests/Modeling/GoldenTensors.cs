using ClipSharp.Checkpoints;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>Golden safetensors files as a plain dictionary (through the library reader). Callers dispose the tensors.</summary>
internal static class GoldenTensors
{
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var sd = SafeTensors.Load(path);
        var result = new Dictionary<string, Tensor>();
        foreach (var key in sd.Keys.ToList()) if (sd.Take(key, out var t)) result[key] = t;
        return result;
    }
}
