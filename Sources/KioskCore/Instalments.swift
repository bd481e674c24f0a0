import Foundation

/// One instalment plan offered for a purchase: months, monthly payment, total cost.
public struct InstalmentPlan: Codable, Sendable, Equatable {
    /// Number of monthly instalments.
    public var months: Int
    /// Each month's payment in minor units (the last one absorbs rounding).
    public var monthlyMinor: Int64
    /// The last month's payment in minor units.
    public var lastMonthMinor: Int64
    /// The fee for the whole plan in minor units.
    public var feeMinor: Int64
    /// Amount plus fee, in minor units.
    public var totalMinor: Int64

    enum CodingKeys: String, CodingKey {
        case months, monthlyMinor = "monthly_minor", lastMonthMinor = "last_month_minor", feeMinor = "fee_minor", totalMinor = "total_minor"
    }

    /// Creates a plan from its figures.
    public init(months: Int, monthlyMinor: Int64, lastMonthMinor: Int64, feeMinor: Int64, totalMinor: Int64) {
        self.months = months
        self.monthlyMinor = monthlyMinor
        self.lastMonthMinor = lastMonthMinor
        self.feeMinor = feeMinor
        self.totalMinor = totalMinor
    }
}

/// The instalment plan the shopper chose on the kiosk's screen, as offered: recorded in the
/// checkout and sent in the ``CreditApplication`` (`plan`, absent when no plan was chosen, e.g.
/// a consent given on the terminal alone, and in applications from older agents).
public struct ChosenPlan: Codable, Sendable, Equatable {
    /// Number of instalments.
    public var instalments: Int
    /// Each instalment in minor units (the last one may differ, see ``lastInstalmentMinor``).
    public var instalmentMinor: Int64
    /// The last instalment in minor units (absorbs rounding).
    public var lastInstalmentMinor: Int64
    /// The plan's fee in minor units.
    public var feeMinor: Int64
    /// Total cost to the shopper (amount plus fee) in minor units.
    public var totalMinor: Int64
    /// ISO 4217 currency of the amounts.
    public var currency: String
    /// The lender named on the offer.
    public var lender: String

    /// Creates a record of a chosen plan.
    public init(instalments: Int, instalmentMinor: Int64, lastInstalmentMinor: Int64, feeMinor: Int64, totalMinor: Int64,
                currency: String, lender: String) {
        self.instalments = instalments
        self.instalmentMinor = instalmentMinor
        self.lastInstalmentMinor = lastInstalmentMinor
        self.feeMinor = feeMinor
        self.totalMinor = totalMinor
        self.currency = currency
        self.lender = lender
    }

    /// The record of `plan` as offered in `currency` by `lender`.
    public init(_ plan: InstalmentPlan, currency: String, lender: String) {
        self.init(instalments: plan.months, instalmentMinor: plan.monthlyMinor, lastInstalmentMinor: plan.lastMonthMinor,
                  feeMinor: plan.feeMinor, totalMinor: plan.totalMinor, currency: currency, lender: lender)
    }

    /// Whether the figures add up: positive count and amounts, `instalment × (n−1) + last == total`,
    /// total = `amountMinor` + fee, the payment's currency, a lender named.
    public func isConsistent(amountMinor: Int64, currency paymentCurrency: String) -> Bool {
        instalments > 0 && instalmentMinor > 0 && lastInstalmentMinor > 0 && feeMinor >= 0
            && instalmentMinor * Int64(instalments - 1) + lastInstalmentMinor == totalMinor
            && totalMinor == amountMinor + feeMinor && currency == paymentCurrency && !lender.isEmpty
    }

    enum CodingKeys: String, CodingKey {
        case instalments, instalmentMinor = "instalment_minor", lastInstalmentMinor = "last_instalment_minor"
        case feeMinor = "fee_minor", totalMinor = "total_minor", currency, lender
    }
}

/// Computes instalment plans: a flat fee per month, in basis points of the amount, rounded half up.
public struct InstalmentCalculator: Sendable, Equatable {
    /// Plan lengths offered, in months.
    public var months: [Int]
    /// Fee per month in basis points of the amount (e.g. 60 = 0.60 % a month).
    public var monthlyFeeBasisPoints: Int

    /// Creates a calculator (defaults: 3, 6 and 12 months at 0.60 % a month).
    public init(months: [Int] = [3, 6, 12], monthlyFeeBasisPoints: Int = 60) {
        self.months = months.filter { $0 > 0 }
        self.monthlyFeeBasisPoints = max(0, monthlyFeeBasisPoints)
    }

    /// The plans for `amountMinor`, one per length; empty for non-positive amounts.
    public func plans(amountMinor: Int64) -> [InstalmentPlan] {
        guard amountMinor > 0 else { return [] }
        return months.map { n in
            let bp = Int64(monthlyFeeBasisPoints) * Int64(n)
            let fee = (amountMinor * bp + 5_000) / 10_000
            let total = amountMinor + fee
            let monthly = total / Int64(n)
            let last = total - monthly * Int64(n - 1)
            return InstalmentPlan(months: n, monthlyMinor: monthly, lastMonthMinor: last, feeMinor: fee, totalMinor: total)
        }
    }
}
