using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>Forward passes free every tensor they create: the thread's live-tensor count returns to where it was.</summary>
public class TensorLeakTests
{
    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void HundredInferenceBatchesLeakNoTensors(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        var io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
        var pixels = io["pixel_values"];
        var ids = io["input_ids"];
        // Warm-up: lazily created handles (e.g. parameter wrappers) must not count as leaks.
        using (torch.no_grad()) { var (a, b) = model.forward(pixels, ids); a.Dispose(); b.Dispose(); }

        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 100; i++)
        {
            using var _ = torch.no_grad();
            var (perImage, perText) = model.forward(pixels, ids);
            perImage.Dispose();
            perText.Dispose();
        }
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.Equal(before, after);
        foreach (var t in io.Values) t.Dispose();
    }
}
