using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Checkpoints;

public class StateDictTests
{
    [Fact]
    public void KeepsInsertionOrderAndSupportsDictionaryOperations()
    {
        using var sd = new StateDict();
        sd.Add("b", ones(2));
        sd.Add("a", zeros(3));
        sd["c"] = tensor(new long[] { 0, 1, 2, 3 });
        Assert.Equal(["b", "a", "c"], sd.Keys);
        Assert.Equal(3, sd.Count);
        Assert.True(sd.TryGetValue("a", out var a));
        Assert.Equal(3, a.numel());
        Assert.False(sd.TryGetValue("zz", out _));
        Assert.Throws<ArgumentException>(() => sd.Add("a", ones(1)));
        Assert.Throws<KeyNotFoundException>(() => sd["zz"]);

        var old = sd["b"];
        sd.Set("b", tensor(new[] { 7f, 7f }));
        Assert.True(old.IsInvalid, "replaced tensor is disposed");
        Assert.Equal(["b", "a", "c"], sd.Keys);
        Assert.Equal(7f, sd["b"][0].item<float>());

        Assert.True(sd.Remove("a"));
        Assert.False(sd.Remove("a"));
        Assert.Equal(["b", "c"], sd.Select(kv => kv.Key));
        sd.Rename("c", "d");
        Assert.Equal(["b", "d"], sd.Keys);
        Assert.Equal([4L], sd.Shapes()["d"]);
    }

    [Fact]
    public void TensorsOutliveDisposeScopesAndDieWithTheDictionary()
    {
        var sd = new StateDict();
        Tensor t;
        using (NewDisposeScope())
        {
            t = randn(3, 3);
            sd.Add("x", t);
        }
        Assert.False(t.IsInvalid);
        Assert.Equal(9, sd["x"].numel());
        sd.Dispose();
        Assert.True(t.IsInvalid);
    }
}
