using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Modeling;

/// <summary>EncodeText stops at each group's last end-of-text token; the causal tower makes that exact.</summary>
public class TextPaddingTests
{
    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void SkippingPaddingGivesTheFullContextFeatures(string name)
    {
        using var model = ModelParityTests.LoadGoldenModel(name);
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        int ctx = model.Config.ContextLength, vocab = model.Config.VocabSize;
        var ids = torch.zeros(4, ctx, ScalarType.Int64);
        int[] ends = [3, 9, 1, 12];
        var rng = new Random(7);
        for (int r = 0; r < ends.Length; r++)
        {
            for (int i = 0; i < ends[r]; i++) ids[r, i] = torch.tensor((long)rng.Next(1, vocab - 2));
            ids[r, ends[r]] = torch.tensor((long)(vocab - 1));    // the end-of-text token is the largest id
            for (int i = ends[r] + 1; i < ctx; i++) ids[r, i] = torch.tensor((long)rng.Next(0, vocab - 2)); // padding noise
        }
        var full = model.EncodeText(ids, skipPadding: false);
        var trimmed = model.EncodeText(ids);
        TensorAssert.Relative(trimmed, full, 1e-5, "text features with and without the padding");
    }

    /// <summary>A batch of short and long texts is split into length groups; features and every parameter's gradient
    /// equal the full-context computation.</summary>
    [Fact]
    public void LengthGroupsGiveTheFullContextFeaturesAndGradients()
    {
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        using var scope = NewDisposeScope();
        int ctx = model.Config.ContextLength, vocab = model.Config.VocabSize, n = 48;
        var rng = new Random(11);
        var rows = new long[n * ctx];
        var lengths = new long[n];
        for (int r = 0; r < n; r++)
        {
            int end = r % 2 == 0 ? rng.Next(2, 8) : rng.Next(50, ctx);
            lengths[r] = end + 1;
            for (int i = 0; i < ctx; i++)
                rows[r * ctx + i] = i < end ? rng.Next(1, vocab - 2) : i == end ? vocab - 1 : rng.Next(0, vocab - 2);
        }
        Assert.True(ClipSharp.Modeling.TextLengthBuckets.Plan(lengths, model.Config.TransformerWidth).Count > 1, "the batch should be split");
        var ids = torch.tensor(rows, [n, ctx]);
        using var projection = torch.randn([n, model.Config.EmbedDim], generator: new Generator(5));

        Dictionary<string, Tensor> Gradients(bool skip)
        {
            model.zero_grad();
            var f = model.EncodeText(ids, skipPadding: skip);
            f.mul(projection).sum().backward();
            return model.named_parameters().Where(p => p.parameter.grad is not null)
                .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var fullGrads = Gradients(false);
        var groupedGrads = Gradients(true);
        Assert.Equal(fullGrads.Keys.Order(), groupedGrads.Keys.Order());
        foreach (var (k, g) in fullGrads) TensorAssert.Relative(groupedGrads[k], g, 1e-5, "grad " + k);

        using var noGrad = torch.no_grad();
        TensorAssert.Relative(model.EncodeText(ids), model.EncodeText(ids, skipPadding: false), 1e-5, "grouped text features");

        // The grouped path leaves no tensor behind once its result is disposed.
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) model.EncodeText(ids).Dispose();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void LengthPlanCoversEveryRowOnceAndSplitsOnlyWhenItPays()
    {
        Assert.Single(ClipSharp.Modeling.TextLengthBuckets.Plan(Enumerable.Repeat(12L, 200).ToArray(), 512));
        Assert.Single(ClipSharp.Modeling.TextLengthBuckets.Plan([70, 77], 512)); // a second group would cost more than it saves

        long[] twoClusters = [.. Enumerable.Range(0, 200).Select(i => i % 2 == 0 ? 5L : 77L)];
        var two = ClipSharp.Modeling.TextLengthBuckets.Plan(twoClusters, 512);
        Assert.Equal([5L, 77L], two.Select(b => b.Length));
        Assert.All(two[0].Rows, r => Assert.Equal(0, r % 2));

        var rng = new Random(3);
        long[] spread = [.. Enumerable.Range(0, 128).Select(_ => (long)rng.Next(6, 78))];
        var plan = ClipSharp.Modeling.TextLengthBuckets.Plan(spread, 256);
        Assert.True(plan.Count > 1);
        var all = plan.SelectMany(b => b.Rows).Order().ToArray();
        Assert.Equal(Enumerable.Range(0, 128).Select(i => (long)i), all);
        foreach (var b in plan)
        {
            Assert.Equal(b.Rows.Order(), b.Rows);
            Assert.All(b.Rows, r => Assert.True(spread[r] <= b.Length));
            Assert.Contains(b.Rows, r => spread[r] == b.Length);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => ClipSharp.Modeling.TextLengthBuckets.Plan([3, 0], 64));
    }
}
