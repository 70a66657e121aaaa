using ClipSharp.Imaging;
using ClipSharp.Text;
using ClipSharp.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>The whole training step can memorise a small set: 32 shape/colour pairs reach retrieval R@1 = 1.0.
/// The initial weights come from the process-wide generator, so no other test may draw from it meanwhile.</summary>
[Collection("global generator")]
public class OverfitTests(Xunit.Abstractions.ITestOutputHelper output)
{
    internal static ClipTokenizer Tokenizer => tokenizer.Value;
    static readonly Lazy<ClipTokenizer> tokenizer = new(() => ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz")));

    internal static (Tensor Pixels, Tensor Ids) ShapesBatch(int size)
    {
        var pre = new ClipImagePreprocessor(size);
        var floats = new float[SyntheticShapes.Count * pre.OutputLength];
        for (int i = 0; i < SyntheticShapes.Count; i++)
            pre.ProcessInto(ImageDecoder.Decode(SyntheticShapes.Png(i), $"shape{i}"), floats.AsSpan(i * pre.OutputLength, pre.OutputLength));
        var pixels = torch.tensor(floats, [SyntheticShapes.Count, 3, size, size]);
        var ids = Tokenizer.ToTensor(Enumerable.Range(0, SyntheticShapes.Count).Select(SyntheticShapes.Caption).ToList());
        return (pixels, Compact(ids, TinyModels.Micro.VocabSize));
    }

    /// <summary>Renumbers the BPE ids that occur into 1…k (padding stays 0, end-of-text becomes the largest id) so a
    /// model with a small vocabulary can read them; the end-of-text token stays each row's argmax.</summary>
    internal static Tensor Compact(Tensor ids, int vocab)
    {
        var data = ids.data<long>().ToArray();
        long eot = data.Max();
        var map = new Dictionary<long, long> { [0] = 0, [eot] = vocab - 1 };
        foreach (var id in data) if (!map.ContainsKey(id)) map[id] = map.Count - 1;
        if (map.Count > vocab) throw new InvalidOperationException("vocabulary too small");
        return torch.tensor(data.Select(x => map[x]).ToArray(), ids.shape);
    }

    [Fact]
    public void TinyModelMemorisesThirtyTwoPairs()
    {
        var config = TinyModels.Micro;
        using var model = TinyModels.Create(7, config);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (pixels, ids) = ShapesBatch(config.ImageResolution);
        const int maxSteps = 300;
        using var trainer = new ClipTrainer(model, TinyModels.Options(lr: 3e-3, steps: maxSteps, warmup: 5) with { AdamW = AdamWSettings.For(true, 0.0) });
        double firstLoss = 0, lastLoss = 0, i2t = 0, t2i = 0;
        int step = 0;
        while (step < maxSteps && (i2t < 1 || t2i < 1))
        {
            var r = trainer.Step(pixels, ids);
            if (step++ == 0) firstLoss = r.Loss;
            lastLoss = r.Loss;
            if (step % 10 != 0) continue;
            model.eval();
            using (torch.no_grad())
            using (var img = model.EncodeImage(pixels))
            using (var txt = model.EncodeText(ids))
                (i2t, t2i) = ClipSharp.Evaluation.RetrievalScoring.PairedRecallAt1(img, txt);
        }
        output.WriteLine($"{step} steps, {sw.ElapsedMilliseconds} ms, loss {firstLoss:F3} → {lastLoss:F3}, R@1 {i2t} / {t2i}");
        Assert.True(lastLoss < firstLoss / 4, $"loss {firstLoss:F3} → {lastLoss:F3}");
        Assert.Equal(1.0, i2t);
        Assert.Equal(1.0, t2i);
    }
}
