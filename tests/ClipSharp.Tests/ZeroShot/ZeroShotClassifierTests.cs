using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Text;
using ClipSharp.Text;
using ClipSharp.ZeroShot;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.ZeroShot;

public class ZeroShotClassifierTests
{
    static float[] Row(Tensor t, int i) => t[i].data<float>().ToArray();

    static double[] Normalise(float[] v)
    {
        double n = Math.Sqrt(v.Sum(x => (double)x * x));
        return v.Select(x => x / n).ToArray();
    }

    [Fact]
    public void HandComputedEnsembleEqualsClassifierWeights()
    {
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var tok = SharedTokenizer.Instance;
        string[] classes = ["cat", "dog", "golden retriever"];
        string[] templates = ["a photo of a {}.", "a blurry photo of the {}.", "art of the {}."];
        using var clf = ZeroShotClassifier.Create(model, tok, classes, templates);
        Assert.Equal(100f, clf.Scale);
        Assert.Equal([3L, 64L], clf.Weights.shape);

        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        for (int c = 0; c < classes.Length; c++)
        {
            // Encode each prompt on its own, normalise, average, renormalise — all by hand in double precision.
            var sum = new double[64];
            foreach (var t in templates)
            {
                var ids = tok.ToTensor([t.Replace("{}", classes[c])], 77, truncate: true);
                var e = Normalise(Row(model.EncodeText(ids), 0));
                for (int k = 0; k < 64; k++) sum[k] += e[k] / templates.Length;
            }
            double norm = Math.Sqrt(sum.Sum(x => x * x));
            var expected = sum.Select(x => x / norm).ToArray();
            var actual = Row(clf.Weights, c);
            for (int k = 0; k < 64; k++) Assert.True(Math.Abs(expected[k] - actual[k]) < 1e-5, $"class {c} dim {k}: {expected[k]} vs {actual[k]}");
        }

        // Logits: 100 · cos(image, class weight).
        var img = torch.randn(2, 64, generator: new Generator(7));
        var logits = clf.Logits(img);
        for (int i = 0; i < 2; i++)
        {
            var x = Normalise(Row(img, i));
            for (int c = 0; c < 3; c++)
            {
                var w = Row(clf.Weights, c);
                double dot = Enumerable.Range(0, 64).Sum(k => x[k] * w[k]);
                Assert.Equal(100 * dot, logits[i, c].item<float>(), 3);
            }
        }
    }

    [Fact]
    public void ModelLogitScaleOptionUsesExpOfLogitScale()
    {
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        using var clf = ZeroShotClassifier.Create(model, SharedTokenizer.Instance, ["a", "b"], ["{}"],
            new ZeroShotOptions { UseModelLogitScale = true, TextBatchSize = 1 });
        Assert.Equal(MathF.Exp(model.LogitScale.item<float>()), clf.Scale, 3);
    }

    [Fact]
    public void EnsembleOfOneTemplateIsTheNormalisedEmbedding()
    {
        using var scope = NewDisposeScope();
        var e = torch.tensor(new float[] { 3, 4, 0, 0, 0, 2 }, [2, 1, 3]);
        var w = ZeroShotClassifier.EnsembleWeights(e);
        Assert.Equal(new float[] { 0.6f, 0.8f, 0f, 0f, 0f, 1f }, w.data<float>().ToArray());
        // Normalise before averaging: a long vector does not dominate.
        var two = torch.tensor(new float[] { 10, 0, 0, 1 }, [1, 2, 2]);
        var w2 = ZeroShotClassifier.EnsembleWeights(two).data<float>().ToArray();
        Assert.Equal(MathF.Sqrt(0.5f), w2[0], 5);
        Assert.Equal(MathF.Sqrt(0.5f), w2[1], 5);
    }
}

public class PromptSetsTests
{
    [Fact]
    public void ShippedSetsHaveThePublishedSizes()
    {
        Assert.Equal(80, PromptSets.Templates("imagenet").Count);
        Assert.Equal(80, PromptSets.Templates("imagenet80").Count);
        Assert.Equal(7, PromptSets.Templates("imagenet7").Count);
        Assert.Equal(["a photo of a {}."], PromptSets.Templates("simple"));
        Assert.Equal(1000, PromptSets.ClassNames("imagenet").Count);
        Assert.Equal(10, PromptSets.ClassNames("cifar10").Count);
        Assert.Equal(100, PromptSets.ClassNames("cifar100").Count);
        Assert.Equal(18, PromptSets.Templates("cifar100").Count);
        Assert.Equal(101, PromptSets.ClassNames("food101").Count);
        Assert.Equal(37, PromptSets.ClassNames("oxford_pets").Count);
        Assert.Equal(["a photo of a {}, a type of pet."], PromptSets.Templates("pets"));
        Assert.Equal(10, PromptSets.ClassNames("eurosat").Count);
        Assert.Equal(3, PromptSets.Templates("eurosat").Count);
        Assert.Equal(10, PromptSets.ClassNames("mnist").Count);
        Assert.Equal(47, PromptSets.ClassNames("dtd").Count);
        Assert.Equal(102, PromptSets.ClassNames("flowers102").Count);
        Assert.Equal(43, PromptSets.ClassNames("gtsrb").Count);
        Assert.Equal(100, PromptSets.ClassNames("fgvc_aircraft").Count);
        Assert.Equal(45, PromptSets.ClassNames("resisc45").Count);
        Assert.Equal(20, PromptSets.ClassNames("voc2007").Count);
        foreach (var name in PromptSets.TemplateSetNames)
            Assert.All(PromptSets.Templates(name), t => Assert.True(PromptSets.HasPlaceholder(t), $"{name}: {t}"));
        // Every dataset with class names has templates too.
        Assert.All(PromptSets.ClassNameSetNames, n => Assert.Contains(n, PromptSets.TemplateSetNames));
    }

    [Fact]
    public void ResolvesSetNamesFilesAndInlineTemplates()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, "# my templates\na drawing of a {}.\n\nthe {c} again\r\n");
            var t = PromptSets.ResolveTemplates(["simple", file, "an inline {} prompt", "a photo of a {}."]);
            Assert.Equal(["a photo of a {}.", "a drawing of a {}.", "the {c} again", "an inline {} prompt"], t);
            Assert.Equal("the cat again", PromptSets.Fill(t[2], "cat"));
            Assert.Equal(80, PromptSets.ResolveTemplates(null).Count);
            Assert.Throws<ArgumentException>(() => PromptSets.ResolveTemplates(["no-such-set"]));
            File.WriteAllText(file, "x\ny\n");
            Assert.Equal(["x", "y"], PromptSets.ResolveClassNames(file));
            Assert.Throws<ArgumentException>(() => PromptSets.ResolveTemplates([file]));
            Assert.Equal(10, PromptSets.ResolveClassNames("CIFAR-10").Count);
        }
        finally { File.Delete(file); }
    }
}
