// The whole upgrade workflow, as a C# team would write it with the client openapi-generator
// generates from the published spec (`-g csharp --library httpclient`). `cargo xtask polyglot`
// builds and runs it (`dotnet run`) against the embedded mock on loopback, where a .NET SDK is
// installed:
//
//   dotnet run -- BASE_URL TOKEN ELIGIBLE_CUSTOMER NOT_ELIGIBLE_CUSTOMER CONFLICT_CUSTOMER
//
// It prints one JSON line per scenario, as workflow.ts and workflow.py do; the xtask checks each
// line's facts (and the mock's ledger). A scenario that throws prints {"scenario", "error"} and
// the others still run.

using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Newtonsoft.Json;
using PartnerCenter.ProductUpgrades.Api;
using PartnerCenter.ProductUpgrades.Client;
using PartnerCenter.ProductUpgrades.Model;

if (args.Length < 5)
{
    Console.Error.WriteLine("usage: Workflow BASE_URL TOKEN ELIGIBLE NOT_ELIGIBLE CONFLICT");
    return 2;
}
var (baseUrl, token) = (args[0], args[1]);
var (eligibleCustomer, notEligibleCustomer, conflictCustomer) = (Guid.Parse(args[2]), Guid.Parse(args[3]), Guid.Parse(args[4]));
var api = new ProductUpgradesApi(new Configuration { BasePath = baseUrl, AccessToken = token });

ProductUpgradeRequest Body(Guid customer) => new ProductUpgradeRequest(customer, "Azure");

// A refused call: its status and Partner Center's error code (a JSON number or string).
(int Status, object Code) Refusal(ApiException e)
{
    object code = null;
    if (e.ErrorContent is string text && text.Length > 0)
    {
        var error = JsonConvert.DeserializeObject<ServiceError>(text);
        code = error?.Code?.ActualInstance;
    }
    return (e.ErrorCode, code);
}

// The upgrade id: the last path segment of Location (relative, absolute or /v1/-prefixed).
string UpgradeIdFrom(Multimap<string, string> headers)
{
    var location = headers
        .Where(h => string.Equals(h.Key, "Location", StringComparison.OrdinalIgnoreCase))
        .SelectMany(h => h.Value)
        .FirstOrDefault() ?? "";
    var segment = location.Split('?')[0].Split('/', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
    return segment ?? throw new Exception($"create answered 202 without a usable Location: '{location}'");
}

// Creates an upgrade: 202 and the upgrade id, or the refusal.
(int Status, string UpgradeId, object Code) Create(Guid customer, Guid correlationId, Guid? requestId = null)
{
    try
    {
        var created = api.CreateUpgradeWithHttpInfo(Body(customer), requestId ?? Guid.NewGuid(), correlationId);
        return ((int)created.StatusCode, UpgradeIdFrom(created.Headers), null);
    }
    catch (ApiException e)
    {
        var (status, code) = Refusal(e);
        return (status, null, code);
    }
}

ProductUpgradesEligibility Eligibility(Guid customer, Guid correlationId) =>
    api.CheckEligibility(Body(customer), Guid.NewGuid(), correlationId);

// Polls until the upgrade is over (Completed or Failed), at most 50 times.
(string Id, string Status, int Polls) WaitForCompletion(Guid customer, string upgradeId, Guid correlationId)
{
    for (var polls = 1; polls <= 50; polls++)
    {
        var status = api.GetUpgradeStatus(Guid.Parse(upgradeId), Body(customer), Guid.NewGuid(), correlationId);
        var name = status.Status.ToLowerInvariant();
        if (name == "completed" || name == "failed")
        {
            return (status.Id.ToString(), status.Status, polls);
        }
        Thread.Sleep(20);
    }
    throw new Exception($"upgrade {upgradeId} was not over after 50 polls");
}

var scenarios = new List<(string Name, Func<Dictionary<string, object>> Run)>
{
    // eligible -> create (202, Location) -> poll to the end.
    ("eligible", () =>
    {
        var correlationId = Guid.NewGuid();
        var answer = Eligibility(eligibleCustomer, correlationId);
        var created = Create(eligibleCustomer, correlationId);
        if (created.Status != 202) throw new Exception($"create answered {created.Status} (code {created.Code})");
        var done = WaitForCompletion(eligibleCustomer, created.UpgradeId, correlationId);
        return new Dictionary<string, object>
        {
            ["eligible"] = answer.IsEligible,
            ["createStatus"] = created.Status,
            ["upgradeId"] = created.UpgradeId,
            ["statusId"] = done.Id,
            ["status"] = done.Status,
            ["polls"] = done.Polls,
        };
    }),
    // Not eligible, with a reason; a create anyway is refused with Partner Center's error.
    ("notEligible", () =>
    {
        var correlationId = Guid.NewGuid();
        var answer = Eligibility(notEligibleCustomer, correlationId);
        var refused = Create(notEligibleCustomer, correlationId);
        return new Dictionary<string, object>
        {
            ["eligible"] = answer.IsEligible,
            ["reason"] = answer.Reason,
            ["createStatus"] = refused.Status,
            ["createCode"] = refused.Code,
        };
    }),
    // A second create (another MS-RequestId) while the first runs: 409 900109; eligibility names
    // the upgrade under way, and the client follows it to the end.
    ("conflict", () =>
    {
        var correlationId = Guid.NewGuid();
        var first = Create(conflictCustomer, correlationId, Guid.NewGuid());
        if (first.Status != 202) throw new Exception($"first create answered {first.Status} (code {first.Code})");
        var second = Create(conflictCustomer, correlationId, Guid.NewGuid());
        var answer = Eligibility(conflictCustomer, correlationId);
        if (string.IsNullOrEmpty(answer.UpgradeId)) throw new Exception("eligibility names no upgrade");
        var done = WaitForCompletion(conflictCustomer, answer.UpgradeId, correlationId);
        return new Dictionary<string, object>
        {
            ["firstStatus"] = first.Status,
            ["upgradeId"] = first.UpgradeId,
            ["conflictStatus"] = second.Status,
            ["conflictCode"] = second.Code,
            ["eligible"] = answer.IsEligible,
            ["followed"] = answer.UpgradeId,
            ["status"] = done.Status,
            ["polls"] = done.Polls,
        };
    }),
};

foreach (var (name, run) in scenarios)
{
    var line = new Dictionary<string, object> { ["scenario"] = name };
    var started = System.Diagnostics.Stopwatch.StartNew();
    try
    {
        foreach (var (key, value) in run()) line[key] = value;
    }
    catch (Exception e)
    {
        line["error"] = $"{e.GetType().Name}: {e.Message}";
    }
    line["ms"] = started.ElapsedMilliseconds;
    Console.WriteLine(JsonConvert.SerializeObject(line));
}
return 0;
