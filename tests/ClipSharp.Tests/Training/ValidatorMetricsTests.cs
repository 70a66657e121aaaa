using ClipSharp.Evaluation;
using ClipSharp.Training;
using ClipSharp.ZeroShot;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>Training validation scores with the evaluation's code, so val/* and clip eval agree on the same features.</summary>
public class ValidatorMetricsTests
{
    [Fact]
    public void TiedSimilaritiesGiveTheSameRecallInValidationAndEvaluation()
    {
        using var scope = NewDisposeScope();
        // Pairs 0 and 1 are identical (image 0 = image 1, caption 0 = caption 1), so their similarities tie exactly.
        var img = torch.tensor(new float[] { 3, 0, 2, 0, 0, 5 }, [3, 2]);
        var txt = torch.tensor(new float[] { 1, 0, 1, 0, 0, 1 }, [3, 2]);

        // What the removed RetrievalR1 computed: argmax, whose first-index tie-break favours pair 0 and counts it correct.
        var sim = nn.functional.normalize(img, dim: 1).matmul(nn.functional.normalize(txt, dim: 1).t());
        var target = TorchScalars.Arange(3);
        double oldI2t = sim.argmax(1).eq(target).to(ScalarType.Float64).mean().item<double>();
        double oldT2i = sim.argmax(0).eq(target).to(ScalarType.Float64).mean().item<double>();
        Assert.Equal(2.0 / 3, oldI2t, 12);
        Assert.Equal(2.0 / 3, oldT2i, 12);

        // The evaluation path (clip eval retrieval): Core's RetrievalMetrics on the cosine similarity matrix.
        var eval = RetrievalMetrics.Compute(sim.contiguous().data<float>().ToArray(), 3, [0, 1, 2]);
        Assert.Equal(1.0 / 3, eval.ImageToText.RecallAtK[1], 12);
        Assert.Equal(1.0 / 3, eval.TextToImage.RecallAtK[1], 12);

        var (i2t, t2i) = RetrievalScoring.PairedRecallAt1(img, txt);
        Assert.Equal(eval.ImageToText.RecallAtK[1], i2t);
        Assert.Equal(eval.TextToImage.RecallAtK[1], t2i);
        var viaEvaluator = RetrievalScoring.Compute(img, txt, [0, 1, 2]);
        Assert.Equal(eval.ImageToText.RecallAtK[1], viaEvaluator.ImageToText.RecallAtK[1]);
        Assert.Equal(eval.TextToImage.RecallAtK[1], viaEvaluator.TextToImage.RecallAtK[1]);
    }

    [Fact]
    public void ZeroShotTop1IsTheEvaluationClassifiersTop1()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var prompts = torch.randn([4, 3, 8], generator: gen);   // 4 classes × 3 templates
        var images = torch.randn([20, 8], generator: gen);
        var labels = Enumerable.Range(0, 20).Select(i => i % 4).ToArray();
        string[] names = ["a", "b", "c", "d"];

        using var clf = new ZeroShotClassifier(names, ["{}", "a {}", "the {}"], ZeroShotClassifier.EnsembleWeights(prompts), 100f);
        var expected = ClassificationMetrics.Compute(clf.Logits(images).contiguous().data<float>().ToArray(), labels, names).Top1;
        Assert.Equal(expected, Validator.ZeroShotTop1(images, prompts, labels, names));
        Assert.InRange(expected, 0.0, 1.0);
    }
}
